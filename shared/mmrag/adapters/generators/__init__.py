"""Answer generators: the Generator port over Claude, OpenAI-compatible servers, Bedrock and the extractive answerer."""
