"""ROS 2 over Eclipse Cyclone DDS without a ROS install (the middleware of rmw_cyclonedds_cpp).

Topics are registered with cyclonedds under their ROS names and types (`rt/x`,
`pkg::msg::dds_::T_`, standard QoS), so `ros2 topic echo`, rclpy nodes and rosbag2 on the same
domain see them as ordinary ROS 2 topics. Samples go through cyclonedds' raw write/take calls with
rosbags' CDR, the same bytes cyclonedds' own serializer produces (tests check it) at a fraction of
its cost. Services use the request/reply topics `rq/<s>Request` / `rr/<s>Reply` with
rmw_cyclonedds_cpp's 16-byte request header.

Every endpoint is taken from in the owner's thread; `DdsTransport.wait` blocks on a waitset that
fires when any reader holds data, or on `wake()`.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from cyclonedds._clayer import ddspy_take, ddspy_write
from cyclonedds.core import (
    DDSException,
    GuardCondition,
    InstanceState,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from vla.runtime.ros2 import messages, names
from vla.runtime.ros2.qos import SERVICES, QosProfile, to_cyclonedds
from vla.runtime.ros2.transport import ActionEndpoint, Counters, Received

logger = logging.getLogger(__name__)

_ANY = SampleState.Any | ViewState.Any | InstanceState.Any
_TAKE_BATCH = 64
MAX_DOMAIN_ID = 232  # the DDS spec's port mapping allows domain ids 0..232


def _pad4(data: bytes) -> bytes:
    # cyclonedds' DataWriter pads every serialized sample to a multiple of 4 bytes; so do we.
    return data + b"\0" * (-len(data) % 4)


@dataclass(frozen=True)
class RequestId:
    """Who asked: the client's guid and its request's sequence number (copied into the reply)."""

    guid: int
    seq: int


class DdsTransport:
    """One DDS participant speaking ROS 2.

    Args:
        domain_id: the ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or 0).
    """

    def __init__(self, domain_id: int | None = None) -> None:
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0"))
        if not 0 <= domain_id <= MAX_DOMAIN_ID:
            raise ValueError(f"DDS domain id must be in [0, {MAX_DOMAIN_ID}], got {domain_id}")
        self.domain_id = domain_id
        try:
            self.participant = DomainParticipant(domain_id)
        except DDSException as e:
            # Ids above 101 put the discovery ports inside Linux's ephemeral range (32768+), where any
            # other socket may already hold them; ROS 2 recommends 0..101 for that reason.
            hint = (
                " (ids above 101 share ports with Linux's ephemeral range; use 0..101)"
                if domain_id > 101
                else ""
            )
            raise RuntimeError(f"could not join DDS domain {domain_id}: {e}{hint}") from e
        self._topics: dict[str, Topic] = {}
        self._waitset = WaitSet(self.participant)
        self._guard = GuardCondition(self.participant)
        self._waitset.attach(self._guard)
        self._conditions: list[ReadCondition] = []
        self._lock = threading.Lock()
        self._closed = False

    # ---- endpoints --------------------------------------------------------------------------------
    def _topic(self, dds_name: str, msgtype: str) -> Topic:
        with self._lock:
            if dds_name not in self._topics:
                # Service request/reply topics carry rmw_cyclonedds_cpp's request header in every sample.
                header = dds_name.startswith(("rq/", "rr/"))
                idl = messages.idl_type(msgtype, request_header=header)
                self._topics[dds_name] = Topic(self.participant, dds_name, idl)
            return self._topics[dds_name]

    def _reader(self, dds_name: str, msgtype: str, qos: QosProfile) -> DataReader:
        reader = DataReader(self.participant, self._topic(dds_name, msgtype), qos=to_cyclonedds(qos))
        cond = ReadCondition(reader, _ANY)
        self._waitset.attach(cond)
        self._conditions.append(cond)
        return reader

    def _writer(self, dds_name: str, msgtype: str, qos: QosProfile) -> DataWriter:
        return DataWriter(self.participant, self._topic(dds_name, msgtype), qos=to_cyclonedds(qos))

    def subscribe(self, topic: str, msgtype: str, qos: QosProfile) -> DdsSubscription:
        """Subscribes to an absolute ROS topic."""
        return DdsSubscription(self, topic, msgtype, qos)

    def advertise(self, topic: str, msgtype: str, qos: QosProfile) -> DdsPublisher:
        """Creates a publisher on an absolute ROS topic."""
        return DdsPublisher(self, topic, msgtype, qos)

    def service_server(self, service: str, request_type: str, response_type: str) -> DdsServiceServer:
        return DdsServiceServer(self, service, request_type, response_type)

    def service_client(self, service: str, request_type: str, response_type: str) -> DdsServiceClient:
        return DdsServiceClient(self, service, request_type, response_type)

    def action_server(self, name: str, action_type: str = messages.ACTION_TYPE) -> ActionEndpoint:
        from vla.runtime.ros2.action import DdsActionServer

        return DdsActionServer(self, name, action_type)

    def make(self, msgtype: str, fields: dict[str, Any]) -> Any:
        return messages.build(msgtype, fields)

    # ---- waiting ----------------------------------------------------------------------------------
    def wait(self, timeout_s: float) -> None:
        """Blocks until a reader holds data, `wake()` is called, or `timeout_s` passes."""
        if self._closed:
            time.sleep(max(0.0, timeout_s))
            return
        self._waitset.wait(max(0, int(timeout_s * 1e9)))
        self._guard.take()

    def wake(self) -> None:
        if not self._closed:
            self._guard.set(True)

    def now_ns(self) -> int:
        return time.time_ns()

    def close(self) -> None:
        """Deletes the participant and everything in it."""
        if self._closed:
            return
        self._closed = True
        self.participant.__del__()  # dds_delete of the participant deletes its readers and writers


class DdsSubscription:
    """A subscription to one ROS topic; `take()` returns decoded messages."""

    def __init__(self, transport: DdsTransport, topic: str, msgtype: str, qos: QosProfile) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self.counters = Counters()
        self._transport = transport
        self._reader = transport._reader(names.dds_topic(topic), msgtype, qos)

    def take_raw(self) -> list[tuple[bytes, int]]:
        """The raw CDR samples (bytes, arrival ns) that arrived since the last call."""
        out: list[tuple[bytes, int]] = []
        while True:
            ret = ddspy_take(self._reader._ref, _ANY, _TAKE_BATCH)
            if isinstance(ret, int):
                raise RuntimeError(f"dds take on {self.topic} failed with return code {ret}")
            now = self._transport.now_ns()
            out.extend((data, now) for data, info in ret if info.valid_data)
            if len(ret) < _TAKE_BATCH:
                return out

    def take(self) -> list[Received]:
        got: list[Received] = []
        for data, recv_ns in self.take_raw():
            self.counters.received += 1
            try:
                got.append(Received(messages.decode(self.msgtype, data), recv_ns))
            except ValueError as e:
                self.counters.malformed += 1
                self.counters.last_error = str(e)
                logger.warning("%s: dropped a malformed message: %s", self.topic, e)
        return got

    def matched(self) -> int:
        return len(self._reader.get_matched_publications())


class DdsPublisher:
    """A publisher on one ROS topic."""

    def __init__(self, transport: DdsTransport, topic: str, msgtype: str, qos: QosProfile) -> None:
        self.topic = topic
        self.msgtype = msgtype
        self._writer = transport._writer(names.dds_topic(topic), msgtype, qos)

    def publish(self, msg: Any) -> None:
        self.publish_raw(messages.encode(self.msgtype, msg))

    def publish_raw(self, data: bytes) -> None:
        """Writes CDR bytes as they are (tests use it to send malformed samples)."""
        ret = ddspy_write(self._writer._ref, _pad4(data))
        if ret < 0:
            raise RuntimeError(f"dds write on {self.topic} failed with return code {ret}")

    def matched(self) -> int:
        return len(self._writer.get_matched_subscriptions())


class DdsServiceServer:
    """The server side of a ROS service: requests in on rq/<s>Request, replies out on rr/<s>Reply."""

    def __init__(self, transport: DdsTransport, service: str, request_type: str, response_type: str) -> None:
        self.service = service
        self.request_type = request_type
        self.response_type = response_type
        self.counters = Counters()
        rq, rr = names.dds_service(service)
        self._reader = transport._reader(rq, request_type, SERVICES)
        self._writer = transport._writer(rr, response_type, SERVICES)

    def take(self) -> list[tuple[RequestId, Any]]:
        out: list[tuple[RequestId, Any]] = []
        while True:
            ret = ddspy_take(self._reader._ref, _ANY, _TAKE_BATCH)
            if isinstance(ret, int):
                raise RuntimeError(f"dds take on service {self.service} failed with return code {ret}")
            for data, info in ret:
                if not info.valid_data:
                    continue
                self.counters.received += 1
                try:
                    guid, seq, body = messages.unframe(data)
                    out.append((RequestId(guid, seq), messages.decode(self.request_type, body)))
                except ValueError as e:
                    self.counters.malformed += 1
                    self.counters.last_error = str(e)
                    logger.warning("service %s: dropped a malformed request: %s", self.service, e)
            if len(ret) < _TAKE_BATCH:
                return out

    def reply(self, request: RequestId, msg: Any) -> None:
        data = messages.frame(request.guid, request.seq, messages.encode(self.response_type, msg))
        ret = ddspy_write(self._writer._ref, _pad4(data))
        if ret < 0:
            raise RuntimeError(f"dds write of a reply on {self.service} failed with return code {ret}")


class DdsServiceClient:
    """The client side of a ROS service; replies are matched to this client by its guid."""

    def __init__(self, transport: DdsTransport, service: str, request_type: str, response_type: str) -> None:
        self.service = service
        self.request_type = request_type
        self.response_type = response_type
        self.guid = random.getrandbits(64)
        self._seq = 0
        rq, rr = names.dds_service(service)
        self._writer = transport._writer(rq, request_type, SERVICES)
        self._reader = transport._reader(rr, response_type, SERVICES)

    def ready(self) -> bool:
        """True when a server's request reader and reply writer are both matched."""
        return bool(self._writer.get_matched_subscriptions()) and bool(
            self._reader.get_matched_publications()
        )

    def call(self, msg: Any) -> int:
        """Sends a request; returns its sequence number (the key of its reply in `take`)."""
        self._seq += 1
        data = messages.frame(self.guid, self._seq, messages.encode(self.request_type, msg))
        ret = ddspy_write(self._writer._ref, _pad4(data))
        if ret < 0:
            raise RuntimeError(f"dds write of a request on {self.service} failed with return code {ret}")
        return self._seq

    def take(self) -> list[tuple[int, Any]]:
        """Replies to this client's requests: (sequence number, response)."""
        out: list[tuple[int, Any]] = []
        ret = ddspy_take(self._reader._ref, _ANY, _TAKE_BATCH)
        if isinstance(ret, int):
            raise RuntimeError(f"dds take on service {self.service} failed with return code {ret}")
        for data, info in ret:
            if not info.valid_data:
                continue
            try:
                guid, seq, body = messages.unframe(data)
            except ValueError as e:
                logger.warning("service %s: dropped a malformed reply: %s", self.service, e)
                continue
            if guid == self.guid:  # replies to other clients of the same service go to every reader
                out.append((seq, messages.decode(self.response_type, body)))
        return out


def wait_until(predicate: Any, *, timeout_s: float, poll_s: float = 0.01) -> bool:
    """Polls `predicate()` until it is true or `timeout_s` passes (for discovery); returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
