"""authsvc: multi-factor authentication and account service of the Defense Security Gateway."""
