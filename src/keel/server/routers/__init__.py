"""One router per capability; each route declares its permission (``keel.server.security``)."""
