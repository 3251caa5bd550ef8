"""Reference solutions to the exercises. Try the exercise before you read these."""
