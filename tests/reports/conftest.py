"""The real SMTP server and HTTP receiver of tests/common/test_notifications."""

from tests.common.test_notifications import mailbox, receiver  # noqa: F401
