"""Text utilities: token counting, sentence splitting, PDF text clean-up and lexical analysis."""
