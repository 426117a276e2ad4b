"""netspec: declarative neural-network training in the tradition of Caffe and Mocha.jl."""
__version__ = "0.1.0"
