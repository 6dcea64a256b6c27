"""The build sandbox: run one build block's filesystem steps in fresh namespaces over overlayfs.

Public API::

    from minibox.sandbox import SandboxSpec, BlockOutcome, run_block
    outcome = run_block(spec, on_output, on_event, should_cancel=None)

``run_block`` has the sandbox run in a zygote (or a fork); the calling process (a Celery
prefork worker) comes out unchanged.
Changes land in ``spec.upper_dir``; the caller commits it as a layer.  ``on_output(bytes)``
gets RUN stdout+stderr as it comes; ``on_event(dict)`` gets ``{"type": "step", "line", "op",
"text"}`` at each step, ``{"type": "log", "line", "text"}`` (PKG/AUTO-DEPS commands) and
``{"type": "warning", "line", "text"}``.  Errors: BuildFailed (a failed process carries
``.tail``, its last output lines, also in ``.hint``), UserError, KernelError, Cancelled.

Modules: spec (SandboxSpec, BlockOutcome), build (run_block, worker side), zygote (the small
process each worker process has run its sandboxes), supervisor (the sandbox: namespaces,
mounts, steps), process (each RUN's PID namespace and exec), mounts, steps, copyops,
sources (COPY source resolution; a stand-in for minibox.builder.context.resolve_sources),
rootfs (paths inside the image), users, pkg.
"""

from minibox.sandbox.build import run_block
from minibox.sandbox.spec import BlockOutcome, SandboxSpec, StepTiming

__all__ = ["BlockOutcome", "SandboxSpec", "StepTiming", "run_block"]
