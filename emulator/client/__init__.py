"""What the light commands load: the HTTP client of the service, finding its URL, registry logins."""
