print("authproxy")
