from sparsa.cli import main

main()
