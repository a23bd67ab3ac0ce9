"""ftops' model server: a local base model with LoRA adapters behind OpenAI's protocol (``manage.py model-server``)."""
