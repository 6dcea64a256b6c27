"""The monitor's attach socket (``attach.sock`` in the container dir), for -t and -i.

Frames from a client: b'd'+len16+data (input to the PTY or the stdin pipe), b'r'+len16+
"rows cols" (a PTY resize), b'c' (close the stdin pipe: the container's EOF).  With a PTY
the output goes to the clients raw (best effort; the log has all of it).  A mixin of
``monitor.Monitor``, which owns the state it uses: clients, listener, master, stdin_w,
pending, stdin_eof and ``_input_fd()``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios


class AttachServer:
    def _listen(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            os.unlink("attach.sock")
        except FileNotFoundError:
            pass
        s.bind("attach.sock")          # relative: we run in the container dir
        os.chmod("attach.sock", 0o600)
        s.listen(8)
        self.listener = s

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        self.clients[conn.fileno()] = conn
        conn.setblocking(True)

    def _client_input(self, fd: int) -> None:
        conn = self.clients[fd]
        try:
            head = _recv_exact(conn, 3)
            kind, size = head[:1], struct.unpack(">H", head[1:])[0]
            body = _recv_exact(conn, size) if size else b""
        except OSError:
            self._drop_client(fd)
            return
        if kind == b"d" and self._input_fd() >= 0:
            self.pending = body
            self._flush_input()
        elif kind == b"c" and self.master < 0:
            self.stdin_eof = True
            if not self.pending:
                self._close_stdin()
        elif kind == b"r" and self.master >= 0:
            rows, cols = (int(x) for x in body.split())
            set_winsize(self.master, rows, cols)

    def _flush_input(self) -> None:
        """Write what the PTY / stdin pipe takes now; keep the rest pending."""
        try:
            n = os.write(self._input_fd(), self.pending)
        except BlockingIOError:
            return
        except OSError:        # EPIPE / EIO: nobody reads it any more
            self.pending = b""
            self._close_stdin()
            return
        self.pending = self.pending[n:]
        if not self.pending and self.stdin_eof:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1
            self.pending = b""

    def _drop_client(self, fd: int) -> None:
        conn = self.clients.pop(fd, None)
        if conn is not None:
            conn.close()


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("attach client closed")
        buf += chunk
    return buf


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
