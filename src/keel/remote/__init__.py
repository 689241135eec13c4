"""The remote SDK: ``keel.open("http://host:port", token=...)`` returns a RemoteWorkspace whose services
have the embedded ones' methods and return types, over a keel server's REST API."""

from keel.remote.client import ServerError, ServerUnreachable
from keel.remote.workspace import RemoteWorkspace

__all__ = ["RemoteWorkspace", "ServerError", "ServerUnreachable"]
