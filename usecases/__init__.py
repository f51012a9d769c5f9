"""The use cases: each change as it happens, composed once, above the apps it touches.

The ground floor (`dispatch.services`: the order lifecycle and drivers' capacity) knows
nothing of the apps built on it. The apps (`offers`, `availability`, `escalation`, `vendure`)
each own their rows and their rules and build on the ground only. A use case here is one
function that calls the lifecycle and those apps' services explicitly, in one transaction, in
a fixed order, and schedules what follows after commit through `dispatch.after_commit`. Every
entry point (a view, the driver socket, a task, a sweep, an admin action, a command) calls a
use case, never the layers below for a change. The layering is enforced by import-linter
(`.importlinter`, run by `make lint`).
"""
