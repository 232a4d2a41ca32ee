"""(placeholder: the layout is being written)"""
