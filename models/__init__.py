"""Pure pydantic models shared by every layer: the plan, activity inputs and results, workflow status.

Nothing here does I/O, so workflows can import these models through the sandbox.
"""
