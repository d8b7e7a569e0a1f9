from django.http import HttpResponse


def queue(request):
    return HttpResponse("queue: not built yet", status=501)
