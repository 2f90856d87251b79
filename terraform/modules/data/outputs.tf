output "buckets" {
  description = "Bucket names by purpose: raw_recordings, recordings, files (shared files and PDFs), sources."
  value       = { for k, b in google_storage_bucket.bucket : k => b.name }
}

output "firestore_database" {
  description = "The Firestore database's name."
  value       = google_firestore_database.main.name
}
