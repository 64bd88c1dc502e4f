"""Reaching the lab once it exists: Session Manager tunnels, SQL, the shop schema, endpoints, the web app."""
