"""Per-device broker logins and access rules, written into the broker while it runs.

Production uses Mosquitto's dynamic-security plugin: the hub, logged in as the plugin's
admin, sends JSON commands to ``$CONTROL/dynamic-security/v1`` and reads the answers on
``…/response``. Each device gets its own client (username and password, bound to the
device's one client id from ``protocol/clientid.py``, so its login cannot take over another
device's session) and its own role holding DESIGN.md section 3's rules. Changes apply at
once, without a broker restart; deleting a client ends its open session.

The embedded amqtt broker (and an anonymous development broker) has no access control:
there the hub uses ``NoBrokerAdmin``, which only warns once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as mqtt

from hub.mqtt_session import close_session, open_session
from protocol import topics
from protocol.broker import BrokerAddress
from protocol.clientid import device_client_id

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

Acl = dict[str, Any]


class BrokerAdminError(RuntimeError):
    """The broker did not take a change (unreachable, no answer, or refused)."""


@dataclass(frozen=True)
class DeviceAccess:
    """What the broker must know about one device to apply its rules."""

    site: str
    device: str
    kind: str
    username: str
    rooms: tuple[str, ...] = ()

    @property
    def role(self) -> str:
        """The device's own role name (sites and ids are slugs, so '.' keeps them apart)."""
        return f"empfang.{self.site}.{self.device}"

    @property
    def client_id(self) -> str:
        """The only MQTT client id the broker accepts for the device's login."""
        return device_client_id(self.site, self.device)


def device_username(site: str, device: str) -> str:
    """A device's broker username, unique across the sites sharing one broker."""
    return f"{topics.check_slug(site, 'site')}.{topics.check_slug(device, 'device')}"


def hub_role(site: str) -> str:
    """The role that lets the hub publish its site's topics."""
    return f"empfang.{topics.check_slug(site, 'site')}.hub"


def _acl(acltype: str, topic: str, allow: bool = True, priority: int = 0) -> Acl:
    return {"acltype": acltype, "topic": topic, "allow": allow, "priority": priority}


def device_acls(access: DeviceAccess) -> list[Acl]:
    """DESIGN.md section 3: read the site's room status, the hub state and its own
    ``devices/<id>/#``; write only its own state and the knock topics of its rooms."""
    site, device = access.site, access.device
    own = f"{topics.site_prefix(site)}/devices/{topics.check_slug(device, 'device')}/#"
    readable = [topics.room_status_filter(site), topics.hub_state(site), own]
    acls = [_acl("subscribePattern", t) for t in readable]
    # Delivery is checked as well (priority 1 before the catch-all deny), so no filter
    # that slips past the subscribe check can ever carry another topic to the device.
    acls += [_acl("publishClientReceive", t, priority=1) for t in readable]
    acls.append(_acl("publishClientReceive", "#", allow=False, priority=0))
    acls.append(_acl("publishClientSend", topics.device_state(site, device)))
    if access.kind in ("display", "light"):
        acls += [_acl("publishClientSend", topics.room_knock(site, r)) for r in access.rooms]
    return acls


def hub_acls(site: str, discovery_prefix: str = "") -> list[Acl]:
    """The hub writes every topic of its site (status, config, cmd, signal, events), and
    its site's Home Assistant discovery configs when it publishes them."""
    acls = [
        _acl("publishClientSend", f"{topics.site_prefix(site)}/#"),
        _acl("publishClientReceive", f"{topics.site_prefix(site)}/#"),
        _acl("subscribePattern", f"{topics.site_prefix(site)}/#"),
    ]
    if discovery_prefix:
        node = topics.home_assistant_discovery_node(site, discovery_prefix)
        acls.append(_acl("publishClientSend", f"{node}/#"))
    return acls


class BrokerAdmin(Protocol):
    """Where device logins and rules go."""

    name: str

    def start(self) -> None:
        """Begin work (connect, make sure the hub itself may publish)."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def add_device(self, access: DeviceAccess, password: str) -> None:
        """Create (or replace) the device's login and rules."""

    def sync_device(self, access: DeviceAccess) -> None:
        """Bring the device's rules in line with its rooms."""

    def remove_device(self, access: DeviceAccess) -> None:
        """Delete the device's login and rules; its open session ends."""


class NoBrokerAdmin:
    """For brokers without access control (embedded amqtt, anonymous dev broker)."""

    name = "none"

    def __init__(self, reason: str) -> None:
        self._reason = reason
        self._warned = False
        self._lock = threading.Lock()

    def _warn_once(self) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        log.warning(
            "devices get no broker login or access rules: %s; in production use Mosquitto "
            "with the dynamic-security plugin (see README, Devices)",
            self._reason,
        )

    def start(self) -> None:
        """Nothing to connect."""

    def close(self) -> None:
        """Nothing to release."""

    def add_device(self, access: DeviceAccess, password: str) -> None:
        """Warn (once) that the broker does not check device logins."""
        self._warn_once()

    def sync_device(self, access: DeviceAccess) -> None:
        """Warn (once) that the broker does not check device rules."""
        self._warn_once()

    def remove_device(self, access: DeviceAccess) -> None:
        """Warn (once): without broker logins a revoked device is only ignored by the hub."""
        self._warn_once()


class DynsecAdmin:
    """Mosquitto's dynamic-security plugin, driven over its control topic.

    Owns one paho client logged in with the hub's (admin) credentials; ``request`` sends
    a batch of commands and waits for their answers, matched by correlation data.
    """

    name = "dynsec"

    def __init__(
        self,
        url: str,
        site: str,
        *,
        discovery_prefix: str = "",
        timeout: float = 5.0,
        start_wait: float = 5.0,
    ) -> None:
        self.address = BrokerAddress.parse(url, "EMPFANG_MQTT_URL")
        self.site = topics.check_slug(site, "site")
        self.discovery_prefix = discovery_prefix
        self.timeout = timeout
        self._start_wait = start_wait
        self._cond = threading.Condition()
        self._answers: dict[str, dict[str, Any]] = {}
        self._waiting: set[str] = set()
        self._ready = threading.Event()  # subscribed to the response topic
        self.hub_ready = threading.Event()  # the hub's own role is in place
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"empfang-hub-admin-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )

    # ---- connection ---------------------------------------------------------------
    def start(self) -> None:
        """Connect, then make sure the hub may publish its site (waits a few seconds)."""
        if self._started:
            return
        if not self.address.username:
            raise BrokerAdminError(
                "EMPFANG_MQTT_URL: the dynamic-security admin needs a username and password"
            )
        self._started = True
        client = self._client
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        client.on_message = self._handle_message
        open_session(client, self.address, will=None, keepalive=30, reconnect=(1, 5))
        self._thread = threading.Thread(
            target=self._ensure_hub_loop, name="broker-admin", daemon=True
        )
        self._thread.start()
        if not self.hub_ready.wait(self._start_wait):
            log.warning("the hub's broker role is not confirmed yet; still trying")

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        close_session(self._client, None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        if reason_code.is_failure:
            log.error("the broker refused the hub's admin login: %s", reason_code)
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _handle_subscribe(self, *_args: object) -> None:
        self._ready.set()

    def _handle_disconnect(self, *_args: object) -> None:
        self._ready.clear()

    def _handle_message(
        self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage
    ) -> None:
        try:
            body = json.loads(msg.payload)
            responses = body["responses"]
            if not isinstance(responses, list):
                raise TypeError("responses is not a list")
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignored a malformed dynamic-security answer: %s", exc)
            return
        with self._cond:
            for answer in responses:
                ref = answer.get("correlationData") if isinstance(answer, dict) else None
                if isinstance(ref, str) and ref in self._waiting:
                    self._answers[ref] = answer
            self._cond.notify_all()

    # ---- commands -------------------------------------------------------------------
    def request(
        self, commands: Sequence[dict[str, Any]], timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Send `commands` as one batch; their answers in the same order."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._ready.wait(min(0.1, max(deadline - time.monotonic(), 0))):
            if self._stop.is_set() or time.monotonic() >= deadline:
                raise BrokerAdminError("the broker is not reachable for the hub's admin login")
        refs = [f"empfang-{uuid.uuid4().hex}" for _ in commands]
        batch = [{**cmd, "correlationData": ref} for cmd, ref in zip(commands, refs, strict=True)]
        with self._cond:
            self._waiting.update(refs)
        try:
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                reason = mqtt.error_string(info.rc)
                raise BrokerAdminError(f"could not send to the broker: {reason}")
            deadline = max(deadline, time.monotonic() + 1.0)  # time for the answer itself
            with self._cond:
                while not all(ref in self._answers for ref in refs):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BrokerAdminError(
                            "no answer from Mosquitto's dynamic-security plugin (is it loaded, "
                            "and is the hub's MQTT user its admin?)"
                        )
                    self._cond.wait(left)
                return [self._answers[ref] for ref in refs]
        finally:
            with self._cond:
                self._waiting.difference_update(refs)
                for ref in refs:
                    self._answers.pop(ref, None)

    def _run(self, commands: Sequence[dict[str, Any]], ignore: Iterable[str] = ()) -> list[Any]:
        answers = self.request(commands)
        allowed = set(ignore)
        for command, answer in zip(commands, answers, strict=True):
            error = answer.get("error")
            if error and error not in allowed:
                raise BrokerAdminError(f"{command['command']}: {error}")
        return answers

    # ---- the hub's own rights ---------------------------------------------------------
    def _ensure_hub_loop(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.ensure_hub_access()
            except BrokerAdminError as exc:
                log.warning("broker access for the hub not set up yet: %s", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.hub_ready.set()
            return

    def ensure_hub_access(self) -> None:
        """Give the hub's user a role that may publish the site's topics (idempotent).

        Adding a role to a client makes the plugin disconnect that client's sessions, so
        this happens once per broker, before the hub's main connection starts.
        """
        role, user = hub_role(self.site), str(self.address.username)
        acls = hub_acls(self.site, self.discovery_prefix)
        self._run([{"command": "createRole", "rolename": role}], ignore={"Role already exists"})
        self._run(
            [{"command": "addRoleACL", "rolename": role, **acl} for acl in acls],
            ignore={"ACL with this topic already exists"},
        )
        if role in self._client_roles(user):
            return
        log.info("adding role %s to the broker user %s", role, user)
        # The plugin may drop this very connection before it answers.
        with contextlib.suppress(BrokerAdminError):
            self.request([{"command": "addClientRole", "username": user, "rolename": role}], 1.5)
        if role not in self._client_roles(user):
            raise BrokerAdminError(f"the role {role} did not stick to {user}")

    def _client_roles(self, username: str) -> set[str]:
        answer = self._run([{"command": "getClient", "username": username}])[0]
        client = answer.get("data", {}).get("client", {})
        return {r.get("rolename") for r in client.get("roles", []) if isinstance(r, dict)}

    # ---- devices -------------------------------------------------------------------
    def add_device(self, access: DeviceAccess, password: str) -> None:
        """Replace any previous login of the device with a fresh one, bound to the device's
        client id, and its rules."""
        self._run(
            [
                {"command": "deleteClient", "username": access.username},
                {"command": "deleteRole", "rolename": access.role},
                {"command": "createRole", "rolename": access.role, "acls": device_acls(access)},
                {
                    "command": "createClient",
                    "username": access.username,
                    "password": password,
                    "clientid": access.client_id,
                    "roles": [{"rolename": access.role}],
                },
            ],
            ignore={"Client not found", "Role not found"},
        )
        log.info("broker login %s created for device %s", access.username, access.device)

    def sync_device(self, access: DeviceAccess) -> None:
        """Add and remove ACLs so the role holds exactly the device's rules.

        Changing a role's ACLs does not disconnect its clients (adding roles does).
        """
        answer = self.request([{"command": "getRole", "rolename": access.role}])[0]
        if answer.get("error") == "Role not found":
            log.warning("role %s was missing on the broker; creating it", access.role)
            self._run(
                [
                    {"command": "createRole", "rolename": access.role, "acls": device_acls(access)},
                    {"command": "addClientRole", "username": access.username,
                     "rolename": access.role},
                ]
            )  # fmt: skip
            return
        if answer.get("error"):
            raise BrokerAdminError(f"getRole: {answer['error']}")
        current = {
            (a["acltype"], a["topic"]): a
            for a in answer.get("data", {}).get("role", {}).get("acls", [])
            if isinstance(a, dict) and "acltype" in a and "topic" in a
        }
        wanted = {(a["acltype"], a["topic"]): a for a in device_acls(access)}
        commands: list[dict[str, Any]] = []
        for key, acl in current.items():
            target = wanted.get(key)
            if target is None or (target["allow"], target["priority"]) != (
                acl.get("allow"),
                acl.get("priority", 0),
            ):
                commands.append(
                    {"command": "removeRoleACL", "rolename": access.role, "acltype": key[0],
                     "topic": key[1]}
                )  # fmt: skip
        for key, acl in wanted.items():
            same = current.get(key)
            if same is None or (acl["allow"], acl["priority"]) != (
                same.get("allow"),
                same.get("priority", 0),
            ):
                commands.append({"command": "addRoleACL", "rolename": access.role, **acl})
        if commands:
            self._run(commands)

    def remove_device(self, access: DeviceAccess) -> None:
        """Delete the login (the plugin ends its sessions at once) and the role."""
        self._run(
            [
                {"command": "deleteClient", "username": access.username},
                {"command": "deleteRole", "rolename": access.role},
            ],
            ignore={"Client not found", "Role not found"},
        )
        log.info("broker login %s of device %s deleted", access.username, access.device)


def make_broker_admin(backend: str, url: str, site: str, discovery_prefix: str = "") -> BrokerAdmin:
    """The backend named by the settings ("dynsec" or "none")."""
    if backend == "dynsec":
        return DynsecAdmin(url, site, discovery_prefix=discovery_prefix)
    reason = "the hub runs without a broker login (embedded or anonymous broker)"
    return NoBrokerAdmin(reason)
