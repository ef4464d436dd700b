"""Where credentials come from: the environment, the hub's auth_state, a service-account key."""
