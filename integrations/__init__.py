"""The outside world the hub talks to: Twilio webhooks and SMS, screen pops, CRMs."""
