"""The asyncio shell: transports driving ul.Connection, the SCU Association, the SCP server."""
