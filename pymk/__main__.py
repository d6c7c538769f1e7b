from pymk.cli import main

main()
