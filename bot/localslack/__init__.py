"""The local Slack Web API stand-in and Slack's wire format, shared by shell mode, tests and benches."""
