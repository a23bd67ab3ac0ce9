"""The real SMTP server and HTTP receiver of test_notifications, for every notification test here."""

from tests.common.test_notifications import mailbox, receiver  # noqa: F401
