from formicary.cli import main

main()
