"""The home dashboard, composed on the top floor from each app's summary selector.

Nothing imports this app; it imports the summaries of every app below it, so no lower app
needs to know the dashboard exists.
"""
