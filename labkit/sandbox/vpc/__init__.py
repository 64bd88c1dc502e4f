"""The sandbox's VPC as its processes see it: DNS for RDS endpoints, and where a connection lands and
whether the security groups, ACLs and routes allow it. Used by the kernel, the session plugin and app hosts."""
