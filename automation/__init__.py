"""Pipeline automation: status triggers, status-entered actions, the loop guard.

Decisions are pure functions of (event, configuration, ticket state); the
faust agents and the embedded in-process runner are thin shells around them.
"""
