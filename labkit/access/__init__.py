"""Reaching the lab once it exists: finding its cluster and instance (lookup), Session Manager tunnels, SQL
through one client dialect per database engine, the shop schema, endpoints, the web app."""
