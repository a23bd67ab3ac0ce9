"""The pure core of ftops: no Django, no Celery.

What lives here is plain Python (torch and transformers imported lazily): the training-record
contract, tool-call parsing, chat formatting, the BFCL-style AST checker, output parsing and
scoring, the model-adapter protocol and adapters, the few-shot builder and the ML code under
``ml/``. Apps import the core; the core never imports an app, so a training worker or a
notebook can use it without booting Django. ``tests/core/test_isolation.py`` enforces this.
"""
