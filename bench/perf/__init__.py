"""The issue-8 performance benchmark's parts: processes, stand-ins, load and figures."""
