"""Charter's embedded OAuth 2.1 authorization server and the deployment around it (see the
README's Development section for a map of the folders)."""
