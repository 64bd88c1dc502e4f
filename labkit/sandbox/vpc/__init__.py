"""The sandbox's VPC as its processes see it. Runs in the processes that reach a database or an instance:
DNS for RDS endpoints (dns.py: the client, the session plugin and the app hosts), and where a connection from
an instance lands and whether the security groups, ACLs and routes allow it (network.py: the session plugin
and the app hosts), with the lean boto3 backend those two describe the rules through (lean.py: one session,
read-only service models, so each tunnel stays small)."""
