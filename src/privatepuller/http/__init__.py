"""Provider-neutral HTTP: origins, the read-only session, address checks, the one backoff
mechanism. Nothing here knows a provider; each provider gives its session a policy."""
