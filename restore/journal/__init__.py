"""A change journal read from production's WAL (pgoutput logical decoding), and undo by transaction.

Slack-free and store-free: `sync.drain` writes into any `Sink`; the bot's state store is one.
"""
