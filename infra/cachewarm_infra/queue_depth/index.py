"""Publish the Celery queue depth to CloudWatch, so that ECS can scale the workers on it.

Runs once a minute in the VPC. It speaks just enough RESP over a (TLS) socket to send AUTH and LLEN,
so the function needs nothing beyond the Lambda runtime (boto3 is built in), and synth needs no
bundling, no Docker and no network.

Environment:
    REDIS_HOST, REDIS_PORT      the primary endpoint
    REDIS_TLS                   "true" for rediss (production mode)
    REDIS_AUTH_SECRET_ARN       Secrets Manager secret (optional): JSON {"username", "password"} of the RBAC
                                user (production: the ``metrics`` user, allowed LLEN only), sent as
                                AUTH username password; or a plain AUTH token, sent as AUTH token
    QUEUES                      comma-separated Celery queue names
    METRIC_NAMESPACE            CloudWatch namespace
    STACK_NAME                  value of the "Stack" dimension
"""

from __future__ import annotations

import json
import os
import socket
import ssl

#: kombu's Redis transport keeps priorities 3, 6 and 9 in sibling lists named queue + SEP + priority.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = ("3", "6", "9")


def encode_command(*args: str) -> bytes:
    """One RESP array of bulk strings."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(stream):
    """Read one RESP reply from a binary file-like object. Errors raise RuntimeError."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by Redis")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RuntimeError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2]
    if kind == b"*":
        size = int(body)
        return None if size < 0 else [read_reply(stream) for _ in range(size)]
    raise RuntimeError(f"unexpected RESP reply {line!r}")


def credentials(secret: str) -> tuple[str | None, str]:
    """(username, password) from a secret: JSON with "password" (and "username"), or a bare AUTH token."""
    try:
        value = json.loads(secret)
    except ValueError:
        return None, secret
    if isinstance(value, dict) and isinstance(value.get("password"), str):
        username = value.get("username")
        return (username if isinstance(username, str) and username else None), value["password"]
    return None, secret


def queue_keys(queue: str) -> list[str]:
    return [queue] + [f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


def queue_depths(
    host: str,
    port: int,
    queues: list[str],
    *,
    tls: bool,
    token: str | None,
    username: str | None = None,
    timeout: float = 5.0,
) -> dict[str, int]:
    """LLEN of every queue (all priority lists summed), pipelined over one connection.

    ``token`` is the password: ``AUTH username token`` with a ``username`` (an ACL user), else ``AUTH token``.
    """
    raw = socket.create_connection((host, port), timeout=timeout)
    conn = ssl.create_default_context().wrap_socket(raw, server_hostname=host) if tls else raw
    with conn, conn.makefile("rb") as stream:
        commands = []
        if token:
            commands.append(encode_command("AUTH", *([username] if username else []), token))
        for queue in queues:
            commands.extend(encode_command("LLEN", key) for key in queue_keys(queue))
        conn.sendall(b"".join(commands))
        if token:
            read_reply(stream)
        return {queue: sum(read_reply(stream) for _ in queue_keys(queue)) for queue in queues}


def handler(event, context):  # pragma: no cover - runs in Lambda
    import boto3

    username, token = None, None
    secret_arn = os.environ.get("REDIS_AUTH_SECRET_ARN")
    if secret_arn:
        secret = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
        username, token = credentials(secret)
    queues = [name.strip() for name in os.environ["QUEUES"].split(",") if name.strip()]
    depths = queue_depths(
        os.environ["REDIS_HOST"],
        int(os.environ.get("REDIS_PORT", "6379")),
        queues,
        tls=os.environ.get("REDIS_TLS", "false") == "true",
        token=token,
        username=username,
    )
    stack = {"Name": "Stack", "Value": os.environ["STACK_NAME"]}
    data = [{"MetricName": "QueueDepth", "Dimensions": [stack], "Value": sum(depths.values()), "Unit": "Count"}]
    data += [
        {
            "MetricName": "QueueDepth",
            "Dimensions": [stack, {"Name": "Queue", "Value": queue}],
            "Value": depth,
            "Unit": "Count",
        }
        for queue, depth in depths.items()
    ]
    boto3.client("cloudwatch").put_metric_data(Namespace=os.environ["METRIC_NAMESPACE"], MetricData=data)
    return depths
