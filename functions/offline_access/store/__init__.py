"""What the product keeps, and where: user documents and the job's claims and results in
Firestore, secrets in Secret Manager, and tokens sealed before either sees them."""
