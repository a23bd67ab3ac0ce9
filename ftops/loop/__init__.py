"""The continuous loop: retraining triggers now, improvement cycles next.

The loop sits on the top floor: it reads every app below it (datasets, interactions,
evaluation) and nothing below imports it. Lower apps reach it only by task name.
"""
