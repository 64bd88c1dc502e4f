"""The lab's web app: `server` runs on the instance (and in the sandbox), `userdata` installs it there,
`client` reaches it from the notebook through a Session Manager tunnel."""
