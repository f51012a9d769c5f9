"""The Vendure integration: signed order webhooks in, fulfillment progress out."""
