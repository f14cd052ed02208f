"""Who may use Vantage: local users and their passwords, API tokens, generated secrets and the audit
log. Nothing here knows of the web: the guard (dashboard/guard) asks these questions per request,
the ``vantage users`` and ``vantage tokens`` commands ask them from a shell."""
