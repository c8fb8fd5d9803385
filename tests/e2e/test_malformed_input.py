"""Issue 11 items 5-7 through the real clients (grpcio and flytekit 1.16.31).

- Bytes that are not the request message answer INVALID_ARGUMENT naming the message (was
  INTERNAL "failed to decode Protobuf message").
- GetExecution of a 10,000-character name answers NOT_FOUND, which flytekit turns into
  FlyteEntityNotExistException (the whole name echoed back made a ~10 KB grpc-message that
  grpcio could not read: it reported RESOURCE_EXHAUSTED).
- CreateUploadLocation refuses a file name the blob store cannot hold (the PUT answered 500
  "File name too long").
"""

from __future__ import annotations

import grpc
import pytest

from conftest import DOMAIN, PROJECT, Server


def test_undecodable_bytes_are_invalid_argument_naming_the_message(server: Server):
    with grpc.insecure_channel(server.endpoint) as channel:
        call = channel.unary_unary("/flyteidl.service.AdminService/CreateTask")
        with pytest.raises(grpc.RpcError) as raised:
            call(b"\xff\xff\xff\xff", timeout=30)
    err = raised.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "could not decode flyteidl.admin.TaskCreateRequest" in err.details(), err


def test_a_huge_execution_name_is_not_found_for_flytekit(remote):
    from flytekit.exceptions.user import FlyteEntityNotExistException

    with pytest.raises(FlyteEntityNotExistException) as raised:
        remote.fetch_execution(project=PROJECT, domain=DOMAIN, name="x" * 10_000)
    # The name is quoted shortened (flytekit's text adds grpcio's debug string around it).
    assert "(10024 bytes, shortened) not found" in str(raised.value), raised.value


def test_a_file_name_the_store_cannot_hold_is_refused_at_create_upload_location(server: Server):
    from flyteidl.service import dataproxy_pb2, dataproxy_pb2_grpc

    with grpc.insecure_channel(server.endpoint) as channel:
        stub = dataproxy_pb2_grpc.DataProxyServiceStub(channel)
        request = dataproxy_pb2.CreateUploadLocationRequest(
            project=PROJECT, domain=DOMAIN, filename="y" * 300, content_md5=b"\x00" * 16
        )
        with pytest.raises(grpc.RpcError) as raised:
            stub.CreateUploadLocation(request, timeout=30)
    err = raised.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert "filename" in err.details(), err
