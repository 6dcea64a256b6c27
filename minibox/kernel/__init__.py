"""Every raw kernel call MiniBox makes, behind one small package:
``from minibox import kernel``, then ``kernel.mount(...)``, ``kernel.veth_into(...)``.

Python 3.11 has no os.unshare/os.setns/mount, so these go through libc with ctypes.  Each
wrapper raises ``minibox.errors.KernelError`` with the call, its arguments and the errno text,
so callers above this package never look at errno values.

Notes measured on the target machines (see FIELD-NOTES.md):
- after pivot_root a forked Python cannot import anything: import what you need first and
  exec with absolute paths (os.execve, never os.execvpe);
- Python leaves SIGPIPE and SIGXFSZ ignored across exec: ``reset_signals()`` before exec.

Its modules, by what they touch: ``mounts`` (mount, bind, umount, pivot_root), ``namespaces``
(unshare, setns, sethostname, clone into new namespaces), ``process`` (prctl, capabilities,
signals, seccomp, pidfds), ``spawn`` (posix_spawn with the GIL released), ``files`` (syncfs, writeback,
inode flags), ``netdev`` (a namespace's interface by ioctl: up, address, default route),
``netlink`` (rtnetlink requests packed by hand: the veth of a build block), ``libc`` (the C
library and the error helper they share).  Callers use the names below, not the modules.
"""

from __future__ import annotations

from minibox.errors import KernelError  # what every wrapper raises: kernel.KernelError
from minibox.kernel.mounts import (  # noqa: F401
    MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS, MS_REMOUNT, MS_NOATIME,
    MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC, MS_SILENT, MS_PRIVATE, MS_SLAVE, MS_SHARED,
    MS_RELATIME, MS_STRICTATIME, MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW, mount,
    bind_mount, make_private, umount, pivot_root, pivot_into
)
from minibox.kernel.namespaces import (  # noqa: F401
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
    CLONE_NEWNET, unshare, setns, enter_namespaces, sethostname, clone_process
)
from minibox.kernel.process import (  # noqa: F401
    PR_SET_PDEATHSIG, PR_SET_NAME, PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS,
    PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_SET_MODE_FILTER,
    SECCOMP_FILTER_FLAG_TSYNC, prctl, set_pdeathsig, set_no_new_privs, set_process_name,
    cap_last_cap, capget, capset, drop_bounding_caps, clear_ambient_caps, reset_signals,
    seccomp_load, pidfd_open, pidfd_send_signal
)
from minibox.kernel.spawn import (  # noqa: F401
    POSIX_SPAWN_SETSID, posix_spawn
)
from minibox.kernel.files import (  # noqa: F401
    syncfs, start_writeback, FS_TOPDIR_FL, set_topdir
)
from minibox.kernel.netdev import (  # noqa: F401
    set_link_up, set_ipv4_address, add_default_route
)
from minibox.kernel.netlink import (  # noqa: F401
    veth_into
)

__all__ = [
    "KernelError", "libc", "mounts", "namespaces", "process", "spawn", "files", "netdev", "netlink",
    "MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_SYNCHRONOUS", "MS_REMOUNT",
    "MS_NOATIME", "MS_NODIRATIME", "MS_BIND", "MS_MOVE", "MS_REC", "MS_SILENT", "MS_PRIVATE",
    "MS_SLAVE", "MS_SHARED", "MS_RELATIME", "MS_STRICTATIME", "MNT_FORCE", "MNT_DETACH",
    "MNT_EXPIRE", "UMOUNT_NOFOLLOW", "mount", "bind_mount", "make_private", "umount",
    "pivot_root", "pivot_into", "CLONE_NEWNS", "CLONE_NEWCGROUP", "CLONE_NEWUTS",
    "CLONE_NEWIPC", "CLONE_NEWUSER", "CLONE_NEWPID", "CLONE_NEWNET", "unshare", "setns",
    "enter_namespaces", "sethostname", "clone_process", "PR_SET_PDEATHSIG", "PR_SET_NAME",
    "PR_CAPBSET_READ", "PR_CAPBSET_DROP", "PR_SET_NO_NEW_PRIVS", "PR_CAP_AMBIENT",
    "PR_CAP_AMBIENT_CLEAR_ALL", "SECCOMP_SET_MODE_FILTER", "SECCOMP_FILTER_FLAG_TSYNC",
    "prctl", "set_pdeathsig", "set_no_new_privs", "set_process_name", "cap_last_cap", "capget",
    "capset", "drop_bounding_caps", "clear_ambient_caps", "reset_signals", "seccomp_load",
    "pidfd_open", "pidfd_send_signal", "POSIX_SPAWN_SETSID", "posix_spawn", "syncfs", "start_writeback",
    "FS_TOPDIR_FL", "set_topdir", "set_link_up", "set_ipv4_address", "add_default_route",
    "veth_into"
]
