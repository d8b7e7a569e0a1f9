from django.http import HttpResponse


def worklist(request):
    return HttpResponse("worklist: not built yet", status=501)
