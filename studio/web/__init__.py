"""The what-if studio (``twinopt studio``, extra ``[studio]``): a Dash app that is a client of the
recommendation API (:mod:`studio.api`): one source of truth for jobs, roles and the audit trail."""
