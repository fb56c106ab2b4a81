"""One request through the middlewares and back: the pipeline, the retry and token middleware,
the rate limiter, attempt timers, answer -> error, the session holder, the endpoints' requests.

May import `auth`, `retry`, `_converter`, `errors`, `models`; nothing above (`_hub`, `_stop`,
`bulk`, `client`, `cli`).
"""
