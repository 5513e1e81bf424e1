# Keeping umqtt.simple from blocking forever, without changing the library.
#
# umqtt.simple polls with check_msg(): it sets the socket non-blocking, reads one byte,
# and then calls setblocking(True) before reading the rest of the packet. publish(qos=1)
# and subscribe() wait for their acknowledgement the same way. On MicroPython
# setblocking(True) means "no timeout", so a broker that dies mid-packet would hang the
# light until the watchdog bites. GuardedSocket replaces the client's socket after
# connect(): "blocking" becomes "blocking with a timeout" (OSError ETIMEDOUT afterwards),
# and every read that returned data is counted, so the app can tell whether the broker
# answered a PINGREQ (umqtt.simple swallows the PINGRESP without telling anyone: any
# data read after the PINGREQ counts as the answer).
#
# With TLS the client's socket is the SSL socket, which has no settimeout(); TlsContext
# wraps an ssl.SSLContext for umqtt's `ssl=` argument and keeps the raw TCP socket,
# whose timeout is what the SSL socket's reads wait on.


class GuardedSocket:
    def __init__(self, sock, raw, timeout_s):
        self.sock = sock
        self.raw = raw if raw is not None else sock
        self.timeout_s = timeout_s
        self.reads = 0
        self.raw.settimeout(timeout_s)

    def setblocking(self, flag):
        if flag:
            self.raw.settimeout(self.timeout_s)
        else:
            self.sock.setblocking(False)

    def settimeout(self, value):
        # Never "forever": None becomes our bound.
        self.raw.settimeout(self.timeout_s if value is None else value)

    def read(self, *args):
        data = self.sock.read(*args)
        if data:
            self.reads += 1
        return data

    def readinto(self, *args):
        count = self.sock.readinto(*args)
        if count:
            self.reads += 1
        return count

    def write(self, *args):
        return self.sock.write(*args)

    def close(self):
        return self.sock.close()


class TlsContext:
    """Pass as MQTTClient(ssl=...): wraps like an SSLContext and remembers the TCP socket."""

    def __init__(self, context):
        self.context = context
        self.raw = None

    def wrap_socket(self, sock, server_hostname=None):
        self.raw = sock
        return self.context.wrap_socket(sock, server_hostname=server_hostname)


def guard(client, timeout_s, tls=None):
    """Put a GuardedSocket under a connected umqtt client; returns it."""
    sock = client.sock
    if isinstance(sock, GuardedSocket):
        return sock
    raw = tls.raw if tls is not None else None
    guarded = GuardedSocket(sock, raw, timeout_s)
    client.sock = guarded
    return guarded
