"""webmeeting: the shared core of the platform.

``webmeeting.domain`` is pure (stdlib + pydantic, no SDK, no clock, no env);
``webmeeting.adapters`` wraps one external system each; ``webmeeting.services``
composes them into the use cases the HTTP entry points call.
"""
