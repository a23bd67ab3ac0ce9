"""A real MCP server for the import tests, built with the official SDK's server API.

    python mcp_server.py stdio [--v2]
    python mcp_server.py http PORT [--v2]

``--v2`` publishes a changed schema: ``refund_payment`` gains a required ``reason``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

V2 = "--v2" in sys.argv

server = MCPServer("acme-payments-mcp", version="2.0.0" if V2 else "1.0.0", log_level="WARNING")

CustomerId = Annotated[str, Field(pattern=r"^CUS-\d{5}$", description="Customer id, never a name")]


@server.tool(description="Charge a customer. amount is in cents.")
def create_payment(amount: Annotated[int, Field(ge=1, description="cents")], customer_id: CustomerId,
                   currency: Literal["USD", "EUR", "GBP"] = "USD") -> str:
    return f"charged {amount} {currency} to {customer_id}"


@server.tool(description="Status of one payment.")
def get_payment_status(payment_id: Annotated[str, Field(pattern=r"^PAY-\d{6}$")]) -> str:
    return "completed"


def refund_v1(payment_id: str, amount: int | None = None) -> str:
    return "refunded"


def refund_v2(payment_id: str, reason: Literal["duplicate", "fraudulent", "requested_by_customer"]) -> str:
    return "refunded"


server.tool(name="refund_payment", description="Refund a payment.")(refund_v2 if V2 else refund_v1)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
