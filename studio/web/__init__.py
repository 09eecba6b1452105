"""The what-if studio (``twinopt studio``, extra ``[studio]``): a Dash app that is a client of the
recommendation API (:mod:`studio.api`): one source of truth for jobs, roles and the audit trail.

Pages, one module each: :mod:`.whatif` (variants against a baseline), :mod:`.optimize` (setpoint
search, schedule and energy-plan jobs), :mod:`.approvals` (diff, approve, dry run, push, audit);
:mod:`.recommendation` draws a Recommendation for both, :mod:`.app` is the shell (sign-in, tabs)."""
