import tests.test_middleware as t
from tests.test_middleware import env  # noqa
def test_show(env):
    for q in ["How long does a refund take to reach my card?", "What is the capital of France? http://evil.test/x", "Does the warranty cover accidental damage?"]:
        cid, note = t.ask(env, q)
        print("\n", note["body"])
