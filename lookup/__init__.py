"""Who is calling and what we know: phone normalisation, identities, profile providers."""
