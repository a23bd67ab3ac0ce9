from tests.evaluation.openai_server import fake_openai

__all__ = ["fake_openai"]
